"""The reliability suite (issue #6): traffic, oracle and runner."""
