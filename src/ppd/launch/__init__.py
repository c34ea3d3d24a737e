"""ppd.launch"""
