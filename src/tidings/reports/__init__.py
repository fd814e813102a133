"""Reports: status reports over records and their related records, changes reports over a
period, their files (CSV, xlsx, HTML), and the managers' scheduled digest of them."""
