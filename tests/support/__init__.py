"""What many test suites need: free ports, live servers, the supervised stack, JOSE checks."""
