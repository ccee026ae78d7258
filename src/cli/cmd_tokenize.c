/*
 * cmd_tokenize.c — `clipmod tokenize [--vocab PATH] TEXT...` (DESIGN §7): one JSON array of 77 token
 * ids per TEXT, one per line, exactly as OpenCLIP's tokenizer gives them. With --stdin, each line
 * of standard input (without its '\n') is one more TEXT.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/args.h"
#include "cli/cli.h"
#include "data/tokenizer.h"

static void print_ids(const int32_t *ids) {
    putchar('[');
    for (int i = 0; i < CM_CONTEXT_LEN; i++) printf(i ? ", %d" : "%d", (int)ids[i]);
    puts("]");
}

int cmd_tokenize(int argc, char **argv) {
    const char *vocab = NULL;
    bool from_stdin = false;
    ArgList texts = {0};
    const ArgSpec specs[] = {
        ARG("--vocab", ARG_STR, &vocab, "PATH", "bpe_simple_vocab_16e6.txt.gz, merges.txt, vocab.json or their folder "
                                                "(default: $CLIPMOD_VOCAB, then <prefix>/share/clipmod/)"),
        ARG("--stdin", ARG_FLAG, &from_stdin, NULL, "also tokenize each line of standard input"),
    };
    int rc = args_parse(argc, argv, specs, 2, "tokenize", "[--vocab PATH] [--stdin] TEXT...", &texts);
    if (rc == -1) { args_free(&texts); return 0; }
    if (rc) { args_free(&texts); return rc; }
    if (texts.n == 0 && !from_stdin) {
        fprintf(stderr, "clipmod tokenize: no TEXT given (see --help)\n");
        args_free(&texts);
        return 2;
    }
    CmTokenizer *tok;
    if (cm_tokenizer_load(vocab, &tok)) { args_free(&texts); return cli_fail("tokenize"); }
    int32_t ids[CM_CONTEXT_LEN];
    rc = 0;
    for (int i = 0; i < texts.n && !rc; i++) {
        if (cm_tokenize(tok, texts.v[i], strlen(texts.v[i]), ids, CM_CONTEXT_LEN)) rc = cli_fail("tokenize");
        else print_ids(ids);
    }
    if (from_stdin && !rc) {
        char *line = NULL; size_t cap = 0; ssize_t n;
        while ((n = getline(&line, &cap, stdin)) >= 0) {
            if (n > 0 && line[n - 1] == '\n') n--;
            if (cm_tokenize(tok, line, (size_t)n, ids, CM_CONTEXT_LEN)) { rc = cli_fail("tokenize"); break; }
            print_ids(ids);
        }
        free(line);
    }
    cm_tokenizer_free(tok);
    args_free(&texts);
    if (!rc && fflush(stdout) != 0) { fprintf(stderr, "clipmod tokenize: cannot write to stdout\n"); rc = 1; }
    return rc;
}
