"""The runtime: the Runtime facade, live runs, leases, the change feed, operations."""
