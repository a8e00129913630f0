/* tools.h - the subcommands of the `tally` executable (tally.c dispatches).
 * Internal names of the tools are tallyX_. */
#ifndef TALLY_TOOLS_TOOLS_H
#define TALLY_TOOLS_TOOLS_H

/* Each takes the arguments after the subcommand's name (argv[0] is the name) and
 * returns the process exit status. */
int tallyX_run_main(int argc, char **argv);
int tallyX_report_main(int argc, char **argv);
int tallyX_diff_main(int argc, char **argv);
int tallyX_plot_main(int argc, char **argv);

#endif /* TALLY_TOOLS_TOOLS_H */
