/*  hvn_proto.h — the wire format of hvnotify, in one include. */
#ifndef HVN_PROTO_H_INCLUDED
#define HVN_PROTO_H_INCLUDED

#include "hvn_schema.h"
#include "hvn_codec.h"
#include "hvn_ids.h"
#include "hvn_json.h"
#include "hvn_names.h"
#include "hvn_reject.h"
#include "hvn_service.h"

#endif
