"""The bench tools: synthetic phone photos of MNIST test digits and the benchmarks that use them.

Apart from the serving path: the bot never imports this package (an import-linter contract in
pyproject.toml), and the Docker image leaves it out. `digitbot bench` runs these.
"""
