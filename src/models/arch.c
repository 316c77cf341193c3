/* The family table: every family lorac knows, found by config.json's model_type or a GGUF's
 * general.architecture. */
#include <string.h>

#include "models/arch.h"

extern const arch_family ARCH_GPT2, ARCH_LLAMA, ARCH_BERT, ARCH_ROBERTA;

static const arch_family *const FAMILIES[] = {&ARCH_GPT2, &ARCH_LLAMA, &ARCH_BERT, &ARCH_ROBERTA};
#define N_FAMILIES (sizeof FAMILIES / sizeof FAMILIES[0])

const arch_family *arch_find(const char *model_type) {
    for (size_t i = 0; i < N_FAMILIES; i++)
        for (int j = 0; FAMILIES[i]->model_types[j]; j++)
            if (!strcmp(FAMILIES[i]->model_types[j], model_type)) return FAMILIES[i];
    return NULL;
}

const char *arch_model_types(void) { return "gpt2, llama, mistral, qwen2, bert, roberta"; }
