"""Challenge-response: a random colour sequence flashed on the user's screen, and the
check that the light reflected on the face followed it.

A capture page asks the service for a challenge (:mod:`common.challenge.sequence`: a
nonce and a short random sequence of saturated colours), fills the screen with each
colour in turn while it grabs one camera frame per colour, and submits the frames with
the job. The face stage measures how the face's colour moved from frame to frame
(:mod:`common.challenge.reflectance`) and decides whether it followed the sequence
(:mod:`common.challenge.check`). A replayed recording of another session, or an
injected stream that was not lit by this screen, does not follow a sequence drawn a
few seconds earlier.

What it does not prove: that the lit surface is a face. A printed photo or a mask held
in front of the screen reflects its light too; those are for the image tests. Real
screens and cameras could not be filmed here: the thresholds were set and measured on
frames simulated from real face images (:mod:`common.challenge.simulate`,
``bench/challenge.py``), which the README states with their figures.

This package imports only the light :mod:`~common.challenge.sequence` (the gateway issues
challenges); import :mod:`~common.challenge.check` for the check itself.
"""

from common.challenge.sequence import PALETTE, new_colours, parse_hex, to_hex

__all__ = ["PALETTE", "new_colours", "parse_hex", "to_hex"]
