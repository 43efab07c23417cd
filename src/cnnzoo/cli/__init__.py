"""The `cnnzoo` command line: one module per subcommand."""
