"""How good a run is: perplexity and held-out figures (`evaluate.py`), the likeness report, the leak
audit, style statistics, token statistics and plots. Built on `likeme.use`."""
