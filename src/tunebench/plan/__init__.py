"""What a run will cost before it starts: every job Snakemake would run, with its estimated wall
time, device, GPU hours and API dollars, from the measurements of earlier runs (`tunebench plan`,
and the `budget:` check in the workflow's onstart handler).

- dag: the jobs, from Snakemake's own DAG (never a re-implementation of what is stale)
- records: what earlier runs measured (benchmark TSVs, Snakemake's job records, prediction meta)
- estimate: per-job estimates (which measurement, scaled how)
- budget: totals, the table and the budget check
- probe: a short calibration of a model that has no record yet
- dag_speed: what the workflow sets up while it is parsed so that Snakemake plans a large grid faster
"""
