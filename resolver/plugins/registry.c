/*
 * registry.c - the table of resolver plugins.  A new plugin is one file in
 * this folder plus one line here (docs/plugins.md).
 */
#include <string.h>

#include "resolver/plugin.h"

extern const plugin_desc_t plugin_static;
extern const plugin_desc_t plugin_weighted;
extern const plugin_desc_t plugin_failover;
extern const plugin_desc_t plugin_steer;

static const plugin_desc_t *const registry[] = {
    &plugin_steer,
    &plugin_weighted,
    &plugin_failover,
    &plugin_static,
};

const plugin_desc_t *plugin_find(const char *name)
{
    for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
        if (strcmp(registry[i]->name, name) == 0 && registry[i]->abi == PLUGIN_ABI_VERSION)
            return registry[i];
    return NULL;
}

const char *plugin_names(void)
{
    return "steer, weighted, failover, static";
}
