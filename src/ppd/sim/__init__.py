"""ppd.sim"""
