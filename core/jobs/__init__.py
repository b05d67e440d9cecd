"""What runs: a Snakemake job as data (job), how a workflow script starts it (launch: here or
forked from the warm-start server, warm), how it runs (run: log, threads, seeds, SIGTERM,
multi-process relaunch), its MLflow run and metrics file (metrics), its checkpoints and seed stash
(checkpoints), the trainers' shared set-up (trainer_setup), and the jobs themselves, one module
per kind: the synthetic world, tokenizer and base models (build), data stages (data), training
(train), evaluation and sampling (evaluate), tables, figures, claims and the report (report), the
theory experiments (theory), small-real's reward models and policies (real_text) and distillation
policies (real_distill). A workflow script only names its rule and calls one of these; what a job
does is chosen by its rule's params. The plan they run is in core.plan.
"""
