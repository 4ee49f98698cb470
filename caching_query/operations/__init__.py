"""What operators use on a running cache: statistics, metrics, the command line."""
