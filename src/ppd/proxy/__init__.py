"""ppd.proxy"""
