"""Differential test: the reference's and quiver's conformance workers, same seeded calls, answers compared."""
