package dbustest

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"strings"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
)

const menuIface = "com.canonical.dbusmenu"

// MenuItem is one item of a dbusmenu layout, with the properties a host
// uses to draw it.
type MenuItem struct {
	ID int32
	// Label is the item's text; Type is "separator" for separators, else "".
	Label string
	Type  string
	// Enabled and Visible default to true when the item leaves them out.
	Enabled  bool
	Visible  bool
	Props    map[string]dbus.Variant
	Children []MenuItem
}

// Find returns the first visible descendant whose label is label.
func (it MenuItem) Find(label string) (MenuItem, bool) {
	return it.find(func(c MenuItem) bool { return c.Label == label })
}

// FindPrefix returns the first visible descendant whose label starts with
// prefix.
func (it MenuItem) FindPrefix(prefix string) (MenuItem, bool) {
	return it.find(func(c MenuItem) bool { return strings.HasPrefix(c.Label, prefix) })
}

func (it MenuItem) find(match func(MenuItem) bool) (MenuItem, bool) {
	for _, c := range it.Children {
		if !c.Visible {
			continue
		}
		if match(c) {
			return c, true
		}
		if f, ok := c.find(match); ok {
			return f, true
		}
	}
	return MenuItem{}, false
}

// Lines renders the visible children as a host would list them: the label,
// "---" for a separator, and " [disabled]" after disabled items.
func (it MenuItem) Lines() []string {
	var out []string
	for _, c := range it.Children {
		switch {
		case !c.Visible:
		case c.Type == "separator":
			out = append(out, "---")
		case !c.Enabled:
			out = append(out, c.Label+" [disabled]")
		default:
			out = append(out, c.Label)
		}
	}
	return out
}

func parseLayout(v any) (MenuItem, error) {
	raw, ok := v.([]any)
	if !ok || len(raw) != 3 {
		return MenuItem{}, fmt.Errorf("menu layout: want (ia{sv}av), got %T", v)
	}
	id, ok := raw[0].(int32)
	if !ok {
		return MenuItem{}, fmt.Errorf("menu layout: item id is %T", raw[0])
	}
	props, ok := raw[1].(map[string]dbus.Variant)
	if !ok {
		return MenuItem{}, fmt.Errorf("menu layout: item %d properties are %T", id, raw[1])
	}
	it := MenuItem{ID: id, Props: props, Enabled: true, Visible: true}
	if l, ok := props["label"].Value().(string); ok {
		it.Label = l
	}
	if t, ok := props["type"].Value().(string); ok && t != "standard" {
		it.Type = t
	}
	if e, ok := props["enabled"].Value().(bool); ok {
		it.Enabled = e
	}
	if vis, ok := props["visible"].Value().(bool); ok {
		it.Visible = vis
	}
	children, ok := raw[2].([]dbus.Variant)
	if !ok {
		return MenuItem{}, fmt.Errorf("menu layout: item %d children are %T", id, raw[2])
	}
	for _, c := range children {
		ci, err := parseLayout(c.Value())
		if err != nil {
			return MenuItem{}, err
		}
		it.Children = append(it.Children, ci)
	}
	return it, nil
}

// Menu is a client of a StatusNotifierItem's com.canonical.dbusmenu menu,
// as a tray host would use it. It follows the menu's LayoutUpdated and
// ItemsPropertiesUpdated signals.
type Menu struct {
	conn *dbus.Conn
	// Service and Path locate the menu object.
	Service string
	Path    dbus.ObjectPath

	sigs chan *dbus.Signal
	done chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	updates int
	changed chan struct{}
}

// OpenMenu finds item's menu (its Menu property) and subscribes to the
// menu's update signals. Close unsubscribes.
func OpenMenu(ctx context.Context, conn *dbus.Conn, item Item) (*Menu, error) {
	v, err := conn.Object(item.Service, item.Path).GetProperty(itemIface + ".Menu")
	if err != nil {
		return nil, fmt.Errorf("read the Menu of %s: %w", item, err)
	}
	path, ok := v.Value().(dbus.ObjectPath)
	if !ok {
		return nil, fmt.Errorf("read the Menu of %s: got %T", item, v.Value())
	}
	m := &Menu{conn: conn, Service: item.Service, Path: path, sigs: make(chan *dbus.Signal, 64),
		done: make(chan struct{}), changed: make(chan struct{})}
	for _, member := range []string{"LayoutUpdated", "ItemsPropertiesUpdated"} {
		if err := conn.AddMatchSignalContext(ctx, dbus.WithMatchSender(item.Service), dbus.WithMatchObjectPath(path),
			dbus.WithMatchInterface(menuIface), dbus.WithMatchMember(member)); err != nil {
			return nil, fmt.Errorf("watch the menu of %s: %w", item, err)
		}
	}
	conn.Signal(m.sigs)
	m.wg.Go(m.follow)
	return m, nil
}

func (m *Menu) follow() {
	defer m.conn.RemoveSignal(m.sigs)
	for {
		select {
		case <-m.done:
			return
		case sig, ok := <-m.sigs:
			if !ok {
				return
			}
			if sig.Path != m.Path || !strings.HasPrefix(sig.Name, menuIface+".") {
				continue
			}
			m.mu.Lock()
			m.updates++
			close(m.changed)
			m.changed = make(chan struct{})
			m.mu.Unlock()
		}
	}
}

// Updates counts the LayoutUpdated and ItemsPropertiesUpdated signals seen.
func (m *Menu) Updates() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.updates
}

// WaitUpdates waits until more than n update signals were seen, e.g. n =
// Updates() taken before an action.
func (m *Menu) WaitUpdates(ctx context.Context, n int) error {
	for {
		m.mu.Lock()
		got, ch := m.updates, m.changed
		m.mu.Unlock()
		if got > n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for menu update signals (seen %d): %w", got, ctx.Err())
		}
	}
}

// Layout reads the whole menu with GetLayout.
func (m *Menu) Layout(ctx context.Context) (MenuItem, error) {
	var (
		rev    uint32
		layout any
	)
	call := m.conn.Object(m.Service, m.Path).CallWithContext(ctx, menuIface+".GetLayout", 0, int32(0), int32(-1), []string{})
	if call.Err != nil {
		return MenuItem{}, fmt.Errorf("GetLayout: %w", call.Err)
	}
	if len(call.Body) != 2 {
		return MenuItem{}, fmt.Errorf("GetLayout: %d values in the answer", len(call.Body))
	}
	rev, _ = call.Body[0].(uint32)
	_ = rev
	layout = call.Body[1]
	return parseLayout(layout)
}

// Click sends the "clicked" event for item id, as a host does when the user
// picks it.
func (m *Menu) Click(ctx context.Context, id int32) error {
	err := m.conn.Object(m.Service, m.Path).CallWithContext(ctx, menuIface+".Event", 0,
		id, "clicked", dbus.MakeVariant(int32(0)), uint32(time.Now().Unix())).Err
	if err != nil {
		return fmt.Errorf("click menu item %d: %w", id, err)
	}
	return nil
}

// ClickLabel clicks the visible item labelled label.
func (m *Menu) ClickLabel(ctx context.Context, label string) error {
	root, err := m.Layout(ctx)
	if err != nil {
		return err
	}
	it, ok := root.Find(label)
	if !ok {
		return fmt.Errorf("click %q: no such visible item in %q", label, root.Lines())
	}
	return m.Click(ctx, it.ID)
}

// WaitFor reads the layout now and after every update signal until cond
// accepts it, and returns that layout. On timeout the error shows the last
// layout read.
func (m *Menu) WaitFor(ctx context.Context, cond func(MenuItem) bool) (MenuItem, error) {
	var last MenuItem
	for {
		m.mu.Lock()
		ch := m.changed
		m.mu.Unlock()
		root, err := m.Layout(ctx)
		if err == nil {
			last = root
			if cond(root) {
				return root, nil
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return last, fmt.Errorf("wait for the menu: %w (last read: %q, err %v)", ctx.Err(), last.Lines(), err)
		}
	}
}

// Close stops following the menu's signals.
func (m *Menu) Close() {
	select {
	case <-m.done:
	default:
		close(m.done)
	}
	m.wg.Wait()
}

// ItemProps are the StatusNotifierItem properties a host shows.
type ItemProps struct {
	ID, Title, Status, Category string
	// ToolTip is the tooltip's title text.
	ToolTip string
	// Icon is the largest of IconPixmap, nil when there is none.
	Icon image.Image
	Menu dbus.ObjectPath
}

// ReadItem reads item's properties with org.freedesktop.DBus.Properties.GetAll.
func ReadItem(ctx context.Context, conn *dbus.Conn, item Item) (ItemProps, error) {
	var all map[string]dbus.Variant
	err := conn.Object(item.Service, item.Path).CallWithContext(ctx, "org.freedesktop.DBus.Properties.GetAll", 0, itemIface).Store(&all)
	if err != nil {
		return ItemProps{}, fmt.Errorf("read properties of %s: %w", item, err)
	}
	var p ItemProps
	p.ID, _ = all["Id"].Value().(string)
	p.Title, _ = all["Title"].Value().(string)
	p.Status, _ = all["Status"].Value().(string)
	p.Category, _ = all["Category"].Value().(string)
	p.Menu, _ = all["Menu"].Value().(dbus.ObjectPath)
	if tt, ok := all["ToolTip"].Value().([]any); ok && len(tt) == 4 {
		p.ToolTip, _ = tt[2].(string)
	}
	if px, ok := all["IconPixmap"].Value().([][]any); ok {
		p.Icon = largestPixmap(px)
	}
	return p, nil
}

// largestPixmap decodes the biggest (iiay) ARGB32 pixmap, network byte
// order as the specification says.
func largestPixmap(px [][]any) image.Image {
	var best *image.NRGBA
	for _, p := range px {
		if len(p) != 3 {
			continue
		}
		w, _ := p[0].(int32)
		h, _ := p[1].(int32)
		data, _ := p[2].([]byte)
		if w <= 0 || h <= 0 || len(data) != int(w)*int(h)*4 {
			continue
		}
		if best != nil && best.Bounds().Dx() >= int(w) {
			continue
		}
		img := image.NewNRGBA(image.Rect(0, 0, int(w), int(h)))
		for i := 0; i < int(w*h); i++ {
			a, r, g, b := data[4*i], data[4*i+1], data[4*i+2], data[4*i+3]
			img.SetNRGBA(i%int(w), i/int(w), color.NRGBA{r, g, b, a})
		}
		best = img
	}
	if best == nil {
		return nil
	}
	return best
}
