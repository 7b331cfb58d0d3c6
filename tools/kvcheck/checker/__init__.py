"""kvcheck's checker: reads a history of operations (history.py) and checks
it against one model: a versioned register per key (register.py, searched by
linearizable.py after the cheap version pre-check of versions.py), a set
(setfull.py) or a counter (counter.py). See docs/design/KVCHECK.md."""
