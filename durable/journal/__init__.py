"""The journal: event kinds, the records it is made of, and its view of one run."""
