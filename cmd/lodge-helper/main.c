// lodge-helper: the C half of lodge. Each mode is one file:
//
//   _LODGE_NSEXEC=1   exec.c   lodge exec: run a command in a running container
//   _LODGE_INITSTUB   stub.c   a container's first process joins its v1 cgroups
//   _LODGE_WATCH=1    watch.c  the monitor while the container runs undisturbed
//   _LODGE_SUPERVISE  supervise.c  keep lodge's /proc views server running
//   _LODGE_ATTACH=1   attach.c mount the views into a running container
#include "helper.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	if (getenv("_LODGE_INITSTUB") != NULL)
		initstub_mode(argv);
	if (getenv("_LODGE_NSEXEC") != NULL)
		exec_mode(argc, argv);
	if (getenv("_LODGE_WATCH") != NULL)
		watch_mode(argv);
	if (getenv("_LODGE_SUPERVISE") != NULL)
		supervise_mode(argc, argv);
	if (getenv("_LODGE_ATTACH") != NULL)
		attach_mode();
	fputs("lodge-helper is started by lodge, not by hand\n", stderr);
	return EXIT_HELPER_FAILED;
}
