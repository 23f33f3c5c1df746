/*  hvn_index_www.h — the page's files (subscriber/index/www/), compiled
    into hvn-index by cmake/embed.cmake at build time: nothing is read from
    disk or fetched from anywhere when the page is served.
*/
#ifndef HVN_INDEX_WWW_H_INCLUDED
#define HVN_INDEX_WWW_H_INCLUDED

#include <stddef.h>

//  One embedded file
typedef struct {
    const char *name;          //  Its file name ("index.html"); NULL ends the table
    const unsigned char *data; //  Its bytes
    size_t size;               //  How many
} hvn_index_www_t;

//  The files, ending with a NULL name.
extern const hvn_index_www_t hvn_index_www[];

#endif
