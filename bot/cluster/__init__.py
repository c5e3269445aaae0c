"""Several replicas and machines: what they share through PostgreSQL (DATABASE_URL).

Nothing here runs unless it is configured: the one-machine bot (`make run`) never imports it.
"""
