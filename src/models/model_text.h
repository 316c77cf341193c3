/* model_text.h — the model's tokenizer, of the kind its family names (internal to src/models/). */
#ifndef LORAC_MODEL_TEXT_H
#define LORAC_MODEL_TEXT_H

#include "models/model_internal.h"

/* Loads the tokenizer beside PATH (a directory's files, or a GGUF's metadata) and the token ids a
 * run needs; checks it fits the model's vocabulary. */
int model_text_load(model *m, const char *path, lorac_err *err);
void model_text_free(model_text *t);

#endif
