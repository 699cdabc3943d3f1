"""Known security mutants: each breaks one security check; the tests must notice.

`python -m mutants` (`make mutants`) applies each mutant of `catalog.MUTANTS`, one
at a time, to a scratch copy of the working tree and runs the tests that guard
that check. A mutant the tests do not fail on "survived": a check nothing
guards, which a later change could drop silently. Not part of `make test`: it
runs the chosen tests once per mutant (a few minutes in all).
"""
