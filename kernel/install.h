/* install.h -- writing the ferry kernelspec (`ferry-kernel install`). */
#ifndef FERRY_INSTALL_H
#define FERRY_INSTALL_H

/* Runs `ferry-kernel install ARGS...`; returns the exit status. */
int install_main(int argc, char **argv);

#endif
