"""The one runner, the run folder, and eval / predict / load_run for every recipe."""

from polymodal.runs.api import Run, evaluate_run, load_run, predict_file, write_example_input
from polymodal.runs.folder import RunFolder, config_hash
from polymodal.runs.problem import Job, JobContext, JobResult, Predictor, Problem, predictions_frame
from polymodal.runs.runner import run_recipe

__all__ = ["Job", "JobContext", "JobResult", "Predictor", "Problem", "Run", "RunFolder", "config_hash",
           "evaluate_run", "load_run", "predict_file", "predictions_frame", "run_recipe", "write_example_input"]
