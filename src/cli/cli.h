/*
 * cli.h — the commands of build/clipmod (DESIGN §7). Each lives in src/cli/cmd_<name>.c and
 * returns the process exit status: 0 success, 1 failure, 2 bad usage (one clear line on stderr).
 * Only src/cli/ exits the process.
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

/* Print "clipmod <cmd>: <last library error>" on stderr and return 1. */
int cli_fail(const char *cmd);

#endif
