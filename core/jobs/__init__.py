"""What runs: a Snakemake job as data (job), how a workflow script starts it (launch: here or
forked from the warm-start server, warm), how it runs (run: log, threads, seeds, SIGTERM,
multi-process relaunch), its MLflow run and metrics file (metrics), its checkpoints and seed stash
(checkpoints), the trainers' shared set-up (trainer_setup), and the jobs themselves: training
(train), evaluation and sampling (evaluate), small-real's reward models and policies (real_text)
and distillation policies (real_distill). The plan they run is in core.plan.
"""
