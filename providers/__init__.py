"""One module per remote system the cutover changes, each a Pulumi dynamic provider."""
