from .cli import emulator

emulator(prog_name="python -m batchrun.emulator")
