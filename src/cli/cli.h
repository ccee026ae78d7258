/*
 * cli.h — the commands of build/clipmod (DESIGN §7). Each lives in src/cli/cmd_<name>.c and
 * returns the process exit status: 0 success, 1 failure, 2 bad usage (one clear line on stderr).
 * Only src/cli/ exits the process. Exit codes (docs/flags.md): 0 ok; 1 a runtime or data failure
 * (files, data, numbers); 2 usage (the command line alone is wrong: unknown flag or value, a value
 * out of range, a refused flag, a missing required flag).
 */
#ifndef CM_CLI_H
#define CM_CLI_H

int cmd_info(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_preprocess(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_prepare(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_serve(int argc, char **argv);

/* Print "clipmod <cmd>: <last library error>" on stderr and return 1. */
int cli_fail(const char *cmd);

/* Warning floods: at most this many per-item messages, then one line with the count. */
#define CLI_MAX_LOGGED 50

/* --threads: more than 4x the cores cannot be meant; clamped with a warning (docs/flags.md). */
int cli_threads(const char *cmd, int n);

/* A batch source that passes batches through and reports progress on stderr: on a terminal one
   line rewritten with \r at least twice a second (samples, rate, ETA when the total is known),
   otherwise a line every `period` seconds (and none for a run shorter than that). total 0: unknown. Owns inner. */
struct CmBatchSource;
struct CmBatchSource *cli_progress_source(struct CmBatchSource *inner, const char *cmd, long long total, double period);
void cli_progress_end(struct CmBatchSource *s);   /* final newline on a terminal */

#endif
