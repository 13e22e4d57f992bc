"""The four no-reference measures of Galbally, Marcel & Fierrez (IEEE TIP 2014).

They are computed on the grey image I only (the other 21 compare I with its
smoothed version). Each takes a 2-D float32 grey image on a 0..255 scale and returns
a finite float, for any size from a few pixels up and for constant images:

* ``jpeg_quality_index`` (JQI, Wang, Sheikh & Bovik 2002): higher = better;
* ``high_low_frequency_index`` (HLFI): (low - high frequency |DFT|) / total;
* ``blind_image_quality_index`` (BIQI, Moorthy & Bovik 2010): 0 = pristine, higher = worse;
* ``natural_image_quality_evaluator`` (NIQE, Mittal et al. 2013): higher = worse.

BIQI and NIQE use models fitted by ``workers.quality.fit_nr_models`` (not the
published LIVE-trained ones; see their modules).
"""

from workers.quality.measures.biqi import blind_image_quality_index
from workers.quality.measures.hlfi import high_low_frequency_index
from workers.quality.measures.jqi import jpeg_quality_index
from workers.quality.measures.niqe import natural_image_quality_evaluator

__all__ = [
    "blind_image_quality_index",
    "high_low_frequency_index",
    "jpeg_quality_index",
    "natural_image_quality_evaluator",
]
