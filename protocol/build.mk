# libjp: the wire protocol, a static library used by the kernel and the REPL.
JP_SRCS := protocol/error.c protocol/connection.c protocol/sign.c \
           protocol/frames.c protocol/msg.c protocol/wire.c
JP_OBJS := $(JP_SRCS:%.c=$(B)/%.o)
JP_LIB  := $(B)/libjp.a

all: $(JP_LIB)

$(JP_LIB): $(JP_OBJS)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^
