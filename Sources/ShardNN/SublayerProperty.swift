/// A typed, named child of a layer: `@Sublayer("attention") var attention: Layer` reads and
/// writes the child called `attention` in the owner's ``Layer/sublayers`` registry, so a misspelt
/// child is a compile error while the state-dict names and dotted paths stay the registry's
/// (``Layer/replaceSublayer(at:with:)`` and ``Layer/deepCopy()`` see the same child).
///
/// Use `Layer` as the type of a child that quantization may replace (a linear becomes its
/// quantized form); a concrete class only for children that stay what they are.
@propertyWrapper
public struct Sublayer<Value> {
    /// The child's name in the registry.
    public let name: String

    public init(_ name: String) { self.name = name }

    public static subscript<Owner: Layer>(
        _enclosingInstance owner: Owner,
        wrapped wrappedKeyPath: ReferenceWritableKeyPath<Owner, Value>,
        storage storageKeyPath: ReferenceWritableKeyPath<Owner, Sublayer<Value>>
    ) -> Value {
        get {
            let name = owner[keyPath: storageKeyPath].name
            guard let child = owner.sublayers[name] as? Value else {
                preconditionFailure("\(owner.typeName) has no sublayer '\(name)' of type \(Value.self)")
            }
            return child
        }
        set {
            guard let layer = newValue as? Layer else { preconditionFailure("a sublayer must be a Layer") }
            owner.addSublayer(owner[keyPath: storageKeyPath].name, layer)
        }
    }

    @available(*, unavailable, message: "@Sublayer is only for properties of Layer subclasses")
    public var wrappedValue: Value {
        get { fatalError() }
        set { fatalError() }
    }
}
