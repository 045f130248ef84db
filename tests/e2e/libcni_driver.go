// libcni_driver runs one CNI command over a conflist through libcni, the library that
// containerd's and CRI-O's CNI layers are built on, the way they call it:
//
//	driver add|check|del --conflist FILE --netns PATH --id ID [--ifname eth0]
//	       --bin-dir DIR[:DIR...] --cache-dir DIR
//	       [--annotations JSON] [--args K=V;K=V...] [--timeout SECONDS]
//	driver validate --conflist FILE --bin-dir DIR[:DIR...]
//	driver del-cached ... (the flags of del)
//
// validate is libcni's ValidateNetworkList, which podman runs on every conflist it loads:
// it asks each plugin for VERSION the way libcni does (with CNI_NETNS/CNI_IFNAME/CNI_PATH
// set to "dummy") and checks the list's cniVersion against what each plugin supports.
//
// del-cached is DEL the way CRI-O (ocicni) tears a pod down: through the config libcni
// cached at ADD (GetNetworkListCachedConfig), whatever --conflist holds now; --conflist
// only names the network. containerd's CRI DELs through its current config (del).
//
// --annotations is a JSON object of pod annotations; it goes into
// RuntimeConf.CapabilityArgs["io.kubernetes.cri.pod-annotations"], and libcni hands it to
// the plugins that declare that capability as runtimeConfig (what containerd's CRI plugin
// does with a pod's annotations). --args become RuntimeConf.Args (CNI_ARGS); like kubelet's
// runtimes the driver always sends IgnoreUnknown=1 first, because the reference plugins
// reject unknown CNI_ARGS otherwise. --cache-dir holds libcni's cached results: DEL and
// CHECK read the ADD result from there (it is their prevResult), so pass the same dir to
// all commands of one attachment.
//
// add prints the final result JSON on stdout; check and del print nothing. On failure the
// error (for a plugin error, its CNI error object as JSON) goes to stderr, exit status 1;
// usage errors exit 2.
//
// Build (Debian: golang-go + golang-github-appc-cni-dev, no network):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o driver libcni_driver.go
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

const annotationsCapability = "io.kubernetes.cri.pod-annotations"

func usage() {
	name := filepath.Base(os.Args[0])
	fmt.Fprintf(os.Stderr, "usage: %s add|check|del --conflist FILE --netns PATH --id ID "+
		"[--ifname eth0] --bin-dir DIR[:DIR] --cache-dir DIR [--annotations JSON] "+
		"[--args 'K=V;K=V'] [--timeout S]\n"+
		"       %s validate --conflist FILE --bin-dir DIR[:DIR]\n", name, name)
	os.Exit(2)
}

func die(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "driver: "+format+"\n", a...)
	os.Exit(1)
}

// parseArgs turns "K=V;K=V" into libcni's Args, IgnoreUnknown=1 first (as CRI runtimes do)
// unless the caller set IgnoreUnknown itself.
func parseArgs(text string) ([][2]string, error) {
	var out [][2]string
	hasIgnore := false
	for _, kv := range strings.Split(text, ";") {
		if kv == "" {
			continue
		}
		parts := strings.SplitN(kv, "=", 2)
		if len(parts) != 2 || parts[0] == "" {
			return nil, fmt.Errorf("--args: %q is not K=V", kv)
		}
		if parts[0] == "IgnoreUnknown" {
			hasIgnore = true
		}
		out = append(out, [2]string{parts[0], parts[1]})
	}
	if !hasIgnore {
		out = append([][2]string{{"IgnoreUnknown", "1"}}, out...)
	}
	return out, nil
}

// describe renders an error; a plugin's CNI error object is printed as its JSON.
func describe(err error) string {
	var cniErr *types.Error
	if errors.As(err, &cniErr) {
		if b, jerr := json.Marshal(cniErr); jerr == nil {
			return string(b)
		}
	}
	return err.Error()
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	command := os.Args[1]
	if command != "add" && command != "check" && command != "del" && command != "del-cached" &&
		command != "validate" {
		usage()
	}
	fs := flag.NewFlagSet(command, flag.ExitOnError)
	conflist := fs.String("conflist", "", "conflist file")
	netns := fs.String("netns", "", "network namespace path (empty allowed for del)")
	id := fs.String("id", "", "container ID")
	ifname := fs.String("ifname", "eth0", "interface name in the container")
	binDir := fs.String("bin-dir", "", "plugin directories, ':'-separated")
	cacheDir := fs.String("cache-dir", "", "libcni cache dir (results for CHECK/DEL)")
	annotations := fs.String("annotations", "", "pod annotations, a JSON object")
	args := fs.String("args", "", "CNI_ARGS, 'K=V;K=V'")
	timeout := fs.Int("timeout", 60, "seconds before the command is cancelled")
	if err := fs.Parse(os.Args[2:]); err != nil {
		usage()
	}
	if fs.NArg() != 0 || *conflist == "" || *binDir == "" {
		usage()
	}
	if command != "validate" && (*id == "" || *cacheDir == "" || (*netns == "" && command != "del" && command != "del-cached")) {
		usage()
	}

	list, err := libcni.ConfListFromFile(*conflist)
	if err != nil {
		die("%s: %v", *conflist, err)
	}
	rt := &libcni.RuntimeConf{
		ContainerID:    *id,
		NetNS:          *netns,
		IfName:         *ifname,
		CapabilityArgs: map[string]interface{}{},
	}
	if rt.Args, err = parseArgs(*args); err != nil {
		die("%v", err)
	}
	if *annotations != "" {
		var ann map[string]string
		if err := json.Unmarshal([]byte(*annotations), &ann); err != nil {
			die("--annotations: not a JSON object of strings: %v", err)
		}
		rt.CapabilityArgs[annotationsCapability] = ann
	}

	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(*binDir), *cacheDir, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(*timeout)*time.Second)
	defer cancel()

	switch command {
	case "validate":
		caps, err := cni.ValidateNetworkList(ctx, list)
		if err != nil {
			die("VALIDATE %s: %s", list.Name, describe(err))
		}
		out, _ := json.Marshal(map[string]interface{}{"name": list.Name, "capabilities": caps})
		fmt.Println(string(out))
	case "add":
		result, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			die("ADD %s: %s", list.Name, describe(err))
		}
		if err := result.Print(); err != nil {
			die("printing the result: %v", err)
		}
	case "check":
		if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
			die("CHECK %s: %s", list.Name, describe(err))
		}
	case "del":
		if err := cni.DelNetworkList(ctx, list, rt); err != nil {
			die("DEL %s: %s", list.Name, describe(err))
		}
	case "del-cached":
		cached, _, err := cni.GetNetworkListCachedConfig(list, rt)
		if err != nil || cached == nil {
			die("DEL %s: no cached config (%v)", list.Name, err)
		}
		old, err := libcni.ConfListFromBytes(cached)
		if err != nil {
			die("DEL %s: cached config: %v", list.Name, err)
		}
		if err := cni.DelNetworkList(ctx, old, rt); err != nil {
			die("DEL %s (cached config): %s", list.Name, describe(err))
		}
	}
}
