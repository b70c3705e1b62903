"""Round END4: evaluate with beam recall ranked by log-probability per generated character (length_penalty 1)."""
import functools, sys
import kgpt.recaller as recaller
from kgpt.inference import beam_decode
recaller.beam_decode = functools.partial(beam_decode, length_penalty=float(sys.argv[1]))
from kgpt.cli import main
sys.exit(main(sys.argv[2:]))
