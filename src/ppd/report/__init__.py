"""ppd.report"""
