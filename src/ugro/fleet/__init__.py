"""Past one control node: the fleet seen through Prometheus, and checks run on the nodes.

- `prometheus`: the whole fleet's verdicts read back from Prometheus, which scrapes every
  shard's exporter (and node_exporter's textfiles), for `ugro health`, `hosts` and
  `preflight --from-prometheus`; `promapi` asks Prometheus's HTTP API, bounded.
- `nodelocal`: `ugro check --local`, the checks of the machine it runs on, as Slurm's
  `HealthCheckProgram`: drain on a bad verdict, resume its own drain, write the textfile.

Which nodes a shard's monitor owns is decided in `ugro.config.shards`, below the daemon.
See docs/scaling.md.
"""
