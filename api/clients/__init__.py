"""Who is calling: clients and their API keys (models, admin, commands), the per-worker key cache, authentication and
permissions, and per-client rate limits.

A request's caller is a `Caller` (api/clients/identity.py) in `request.auth`, or None when anonymous calls are
allowed and no key was sent. Everything downstream (rate limits, collections, metrics, logs) reads that one object
and never the database.
"""
