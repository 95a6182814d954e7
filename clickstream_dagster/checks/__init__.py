"""Great Expectations suites (JSON, in suites/) and the blocking asset checks that run them."""
