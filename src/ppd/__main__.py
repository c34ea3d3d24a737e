import sys

from ppd.cli import main

sys.exit(main())
