"""The checks: a parsed program against its models' shapes -> a checked Module."""
