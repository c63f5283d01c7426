"""The loopback replay server and the recordings it serves."""
