"""AutoML: TAO's search algorithms and search space on Optuna.

settings.py  the AutoML settings (TAO's names), from a YAML file and/or key=value
space.py     the search space from the train schema (bounds, options, conditions)
algorithms.py  algorithm name -> Optuna sampler + pruner (rungs at TAO's epochs)
metric.py    the optimised metric and its direction, read from a trial's validation records
storage.py   the Optuna storage (SQLite file by default, any SQLAlchemy URL) with heartbeats
trial.py     one trial = one train job of the jobs package, watched and pruned
controller.py  the study loop: trials in parallel, progress lines, resume after a kill
pbt.py       population based training (generations, exploit + explore) on the same storage
results.py   best_spec.yaml, controller.json, recommendation_<id>.yaml, report.md/json, plots
"""
