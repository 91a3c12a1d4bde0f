/* Shared between the files of src/mime; not part of the module's API. */
#ifndef PETREL_MIME_PRIVATE_H
#define PETREL_MIME_PRIVATE_H

#include <gmime/gmime.h>

#include "mime/mime.h"

/* Process-wide, read-only parser options (lenient RFC 2047, addresses and
 * parameters); initialises GMime on first use. */
GMimeParserOptions *mime_parser_options(void);

#endif
