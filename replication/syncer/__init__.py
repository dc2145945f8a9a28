"""The syncer: the data plane of Replica Of.

Reads sources with the replication protocol (full sync from the RDB snapshot, then the command
stream) and applies them to the destination. Plain asyncio; nothing here imports Django.
"""
