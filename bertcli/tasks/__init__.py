"""One module per task. Each has a per-batch function (plain lists in, plain dicts out)
and a streaming function over records that uses :mod:`bertcli.batching`."""
