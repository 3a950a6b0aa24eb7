"""The engine: a batch's runner and the parts it wires together (submitter, poller, recovery,
budget, meters, retry policy, downloads). They share a journal and a client, never each other."""
