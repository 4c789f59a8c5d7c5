/*
 * static.c - the `static` plugin: always the same addresses.
 *
 *     www: {static: [192.0.2.10, "2001:db8::10"]}
 *     www: {static: {addresses: [192.0.2.10], ttl: 60}}
 *
 * The same as writing A/AAAA records, offered so that a name can switch
 * between plugins without changing shape.
 */
#include "resolver/plugin.h"

typedef struct static_cfg {
    const yconf_node_t *addresses;
    uint64_t ttl_ms;
} static_cfg_t;

static const yconf_key_t static_table[] = {
    {"addresses", YCONF_T_NODE, offsetof(static_cfg_t, addresses), 0, 0, NULL, YCONF_REQUIRED,
     NULL, NULL},
    {"ttl", YCONF_T_DURATION, offsetof(static_cfg_t, ttl_ms), 0, 2147483647000.0, "300", 0, NULL,
     NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, NULL, NULL},
};

static int static_create(const plugin_env_t *env, const yconf_node_t *cfg, const char *path,
                         arena_t *a, diag_list_t *d, void **inst, plugin_decl_t *decl)
{
    (void)env;
    static_cfg_t c = {0};
    const yconf_node_t *addrs = cfg;
    c.ttl_ms = 300000;
    if (cfg->kind == YCONF_MAP) {
        if (yconf_apply(cfg, static_table, &c, a, d, path, NULL) != 0)
            return -22;
        addrs = c.addresses;
    }
    plugin_set_t *set = arena_calloc(a, 1, sizeof(*set));
    char sub[300];
    snprintf(sub, sizeof(sub), "%s%s", path, cfg->kind == YCONF_MAP ? ".addresses" : "");
    if (!plugin_parse_addresses(addrs, sub, a, d, set))
        return -22;
    decl->sets = set;
    decl->nsets = 1;
    decl->ttl = (uint32_t)(c.ttl_ms / 1000);
    *inst = set;
    return 0;
}

static void static_explain(const void *inst, const plugin_query_t *q, plugin_result_t *r,
                           const trace_t *t)
{
    (void)inst;
    (void)q;
    r->set = 0;
    r->ttl = UINT32_MAX;
    r->scope = 0;
    trace_printf(t, "static: always the same addresses (ECS scope 0)");
}

static void static_resolve(const void *inst, const plugin_query_t *q, plugin_result_t *r)
{
    static_explain(inst, q, r, NULL);
}

const plugin_desc_t plugin_static = {
    .abi = PLUGIN_ABI_VERSION,
    .name = "static",
    .create = static_create,
    .resolve = static_resolve,
    .explain = static_explain,
};
