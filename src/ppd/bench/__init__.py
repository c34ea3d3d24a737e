"""ppd.bench"""
