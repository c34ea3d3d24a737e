# Shared by the start/stop scripts: how to run `python -m ppd` from this checkout.
# PPD_PYTHON picks the interpreter (default: the project venv, else python3); src/ is put on
# PYTHONPATH so the scripts also work where ppd is not installed (e.g. the offline GPU host).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${PPD_PYTHON:-}" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PPD_PYTHON="$ROOT/.venv/bin/python"; else PPD_PYTHON=python3; fi
fi
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
ppd() { "$PPD_PYTHON" -m ppd "$@"; }
# Engine flags: real vLLM on GPU 0 and 1 (MODEL, default Llama-3.1-8B-Instruct), or sims with PPD_BACKEND=sim.
engine_flags() {
  if [[ "${PPD_BACKEND:-vllm}" == sim ]]; then
    echo --backend sim
  else
    echo --backend vllm --gpus "${GPUS:-0,1}" --model "${MODEL:-meta-llama/Llama-3.1-8B-Instruct}"
  fi
}
