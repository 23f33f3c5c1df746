/*  hvn_codec.h — the HVN/1 message, encoded and decoded: the wire's frames
    (hvn_wire.h), the encoder (hvn_encoder.h) and the decoder
    (hvn_decoder.h) in one include.
*/
#ifndef HVN_CODEC_H_INCLUDED
#define HVN_CODEC_H_INCLUDED

#include "hvn_decoder.h"
#include "hvn_encoder.h"
#include "hvn_wire.h"

#endif
