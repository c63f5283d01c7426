"""Domain types, instruments, time helpers: the vocabulary every other package speaks."""
