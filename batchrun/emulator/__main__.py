from .cli import emulator

emulator(prog_name="batchrun emulator")
