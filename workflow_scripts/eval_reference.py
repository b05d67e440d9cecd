"""Rule `eval_reference`: the reference rows of every benchmark table (core.eval.reference):
"the longer response is preferred", a fair coin (expected credit 1/2 per pair) and, where the
oracle is exact, the oracle reward's ceiling."""

from core.jobs.evaluate import eval_reference
from core.jobs.launch import entrypoint

if __name__ == "__main__":
    entrypoint(eval_reference, globals())
